//! f32 GEMM on AVX-512F, through the packed-panel driver in `tiled.rs`.
//!
//! The `gemm` crate's f32 path reaches only 65–95 GFLOP/s on two cores of
//! this AMD EPYC on the model's shapes (its stable build stops at AVX2), a
//! third of the FMA peak; the same panels and tiles that run the bf16 kernel
//! at 60–85% of its peak serve f32 with `vfmadd231ps` and a broadcast A
//! operand. The `gemm` crate stays the fallback for CPUs without AVX-512F
//! and for products too thin to fill a tile.

#[cfg(target_arch = "x86_64")]
use super::tiled::{self, Acc, MR, NR, Panels, Strided};

/// Whether this CPU can run the AVX-512F kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The AVX-512F micro-kernel: one f32 per word.
#[cfg(target_arch = "x86_64")]
pub(super) struct F32;

#[cfg(target_arch = "x86_64")]
impl Panels for F32 {
    const GROUP: usize = 1;
    const DIRECT_A: bool = true;

    #[inline(always)]
    fn word(group: &[f32]) -> u32 {
        group[0].to_bits()
    }

    unsafe fn words_of_row(src: &[f32], out: &mut [u32]) {
        // SAFETY: the trait's contract: this kernel runs only where
        // AVX-512F does.
        unsafe { copied(src, out) }
    }

    unsafe fn tile(steps: usize, a: Strided, b: *const u32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32) {
        // SAFETY: the trait's contract.
        unsafe { kernel(steps, a, b as *const f32, c, ldc, mr, nr, accumulate, alpha) }
    }
}

/// The same micro-kernel on operands rounded to bf16 (each word an f32 whose
/// low 16 bits are zero): `precision: bf16` on CPUs where `vdpbf16ps` runs
/// no faster than two FMAs (Intel without AMX; see `CpuBackend::new`). The
/// products are those of the bf16 operands, summed in f32, as `vdpbf16ps`
/// computes them; only the summation order differs. A is always packed,
/// since reading it in place would skip its rounding.
#[cfg(target_arch = "x86_64")]
pub(super) struct Bf16OnFma;

#[cfg(target_arch = "x86_64")]
impl Panels for Bf16OnFma {
    const GROUP: usize = 1;
    const DIRECT_A: bool = false;

    #[inline(always)]
    fn word(group: &[f32]) -> u32 {
        (super::bf16::to_bf16_bits(group[0]) as u32) << 16
    }

    unsafe fn words_of_row(src: &[f32], out: &mut [u32]) {
        // SAFETY: the trait's contract: this kernel runs only where
        // AVX512-BF16 does (`CpuBackend::new`).
        unsafe { rounded(src, out) }
    }

    unsafe fn words_of_columns(lo: &[f32], _hi: &[f32], out: &mut [u32]) {
        // SAFETY: as above; one value per word, so only `lo` is packed.
        unsafe { rounded(lo, out) }
    }

    unsafe fn tile(steps: usize, a: Strided, b: *const u32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32) {
        // SAFETY: the trait's contract.
        unsafe { kernel(steps, a, b as *const f32, c, ldc, mr, nr, accumulate, alpha) }
    }
}

/// `out[i] = src[i].to_bits()`, 16 at a time and the tail under a mask:
/// panel packing copies runs of 12 (one micro-tile's rows), which the
/// compiler's loops leave scalar.
///
/// # Safety
/// AVX-512F available; `out.len() == src.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn copied(src: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), out.len());
    for i in (0..src.len()).step_by(16) {
        let mask = tail_mask(src.len() - i);
        // SAFETY: the mask keeps lanes inside both slices.
        unsafe {
            _mm512_mask_storeu_ps(
                out.as_mut_ptr().add(i) as *mut f32,
                mask,
                _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i)),
            )
        };
    }
}

/// Lanes `0..left.min(16)` of a 16-lane mask.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tail_mask(left: usize) -> u16 {
    if left >= 16 { u16::MAX } else { (1u16 << left) - 1 }
}

/// `out[i] = word(src[i])` of [`Bf16OnFma`], 16 at a time: round to bf16
/// (`vcvtneps2bf16`, nearest even), widen, shift into the high half.
///
/// # Safety
/// AVX-512F and AVX512-BF16 available; `out.len() == src.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn rounded(src: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), out.len());
    for i in (0..src.len()).step_by(16) {
        let mask = tail_mask(src.len() - i);
        // SAFETY: the mask keeps lanes inside both slices.
        unsafe {
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src.as_ptr().add(i))));
            let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_mask_storeu_epi32(out.as_mut_ptr().add(i) as *mut i32, mask, w);
        }
    }
}

/// One `MR × NR` tile: `c[0..mr, 0..nr] (+)= alpha · Σ_p a[p] ⊗ b[p]`, one
/// FMA per row and half-tile per step (the broadcast folds into the FMA's
/// memory operand). Rows past `mr` repeat row `mr − 1`, so an A read in
/// place is never read past its last row; their sums are discarded.
///
/// # Safety
/// AVX-512F must be available; `a` must address rows `0..mr` of `k` f32
/// at its strides, `b` `k·NR` f32; `c` must address an `mr × nr` block
/// with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(k: usize, a: Strided, b: *const f32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32) {
    use std::arch::x86_64::*;
    let base = a.ptr as *const f32;
    // SAFETY: rows below mr are inside a per the contract.
    let rows: [*const f32; MR] = std::array::from_fn(|r| unsafe { base.add(r.min(mr - 1) * a.rs) });
    let mut acc: Acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..k {
        // SAFETY: in bounds per the contract above.
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            for (row, acc_r) in rows.iter().zip(acc.iter_mut()) {
                let av = _mm512_set1_ps(*row.add(p * a.cs));
                acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
                acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
            }
        }
    }
    // SAFETY: the contract above covers store's.
    unsafe { tiled::store(&acc, c, ldc, mr, nr, accumulate, alpha) }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::backend::cpu::{CpuBackend, Stored, gemm_raw, test_data as data};
    use crate::backend::{Backend, MatRef, Precision};

    /// `c0 + alpha · a · b` in f64.
    fn reference(m: usize, n: usize, k: usize, a: MatRef<'_>, b: MatRef<'_>, c0: f32, alpha: f64) -> Vec<f64> {
        let mut out = vec![c0 as f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64)
                    .sum();
                out[i * n + j] += alpha * dot;
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f64], k: usize, what: &str) {
        // f32 rounding of k products summed in some order: the error grows
        // like √k times the unit roundoff times the terms' size (≈ 1 here).
        let tol = 2e-6 * (k as f64).sqrt() * 8.0 + 1e-6;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((*g as f64 - w).abs() <= tol, "{what} elem {i}: {g} vs {w}");
        }
    }

    /// Every layout the driver distinguishes (A read in place, A packed
    /// from columns, A packed generically; B by rows and by columns), tails
    /// in m, n and k, and k past one k-block.
    #[test]
    fn kernel_matches_f64_reference_on_every_layout() {
        if !available() {
            println!("skipping: CPU lacks AVX-512F");
            return;
        }
        let mut be = CpuBackend::new(Precision::F32);
        for &(m, n, k) in &[(8, 16, 1), (9, 33, 5), (17, 65, 300), (70, 100, 129), (64, 256, 513)] {
            let stored = Stored::new(m, n, k, data(m * k, m as u64), data(k * n, n as u64 + 100));
            for (li, (av, bv)) in stored.layouts().into_iter().enumerate() {
                let want = reference(m, n, k, av, bv, 0.5, 1.0);
                let mut c = vec![0.5f32; m * n];
                be.matmul(m, n, k, &mut c, n, true, av, bv);
                close(&c, &want, k, &format!("({m},{n},{k}) layout {li}"));
                // Overwrite instead of accumulate, into a wider c (ldc > n).
                let mut wide = vec![7.0f32; m * (n + 3)];
                be.matmul(m, n, k, &mut wide, n + 3, false, av, bv);
                let got: Vec<f32> = (0..m * n).map(|i| wide[(i / n) * (n + 3) + i % n]).collect();
                let want0: Vec<f64> = want.iter().map(|w| w - 0.5).collect();
                close(&got, &want0, k, &format!("({m},{n},{k}) layout {li}, overwrite"));
                assert!((0..m).all(|r| wide[r * (n + 3) + n..(r + 1) * (n + 3)].iter().all(|&x| x == 7.0)));
            }
        }
    }

    /// The serial raw-pointer path attention uses, with its `alpha`.
    #[test]
    fn serial_raw_path_scales_and_accumulates() {
        if !available() {
            println!("skipping: CPU lacks AVX-512F");
            return;
        }
        let (m, n, k) = (40, 70, 64);
        let a = data(m * k, 5);
        let bt = data(n * k, 6);
        let want = reference(m, n, k, MatRef::row_major(&a, k), MatRef::transposed(&bt, k), 1.0, 0.125);
        let mut c = vec![1.0f32; m * n];
        // SAFETY: a is [m, k] row-major, bt [n, k] read as its transpose, c
        // [m, n]; all owned here.
        unsafe {
            gemm_raw(
                false,
                m,
                n,
                k,
                c.as_mut_ptr(),
                n,
                true,
                0.125,
                (a.as_ptr(), k, 1),
                (bt.as_ptr(), 1, k),
            )
        };
        close(&c, &want, k, "gemm_raw");
    }

    #[test]
    fn same_result_whatever_the_thread_count() {
        if !available() {
            println!("skipping: CPU lacks AVX-512F");
            return;
        }
        let (m, n, k) = (200, 300, 700);
        let a = data(m * k, 7);
        let b = data(k * n, 8);
        // A read in place (row-major), and A packed per task from its
        // columns (transposed), where the column split follows the threads.
        for av in [MatRef::row_major(&a, k), MatRef::transposed(&a, m)] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool"); // ok: test module
                let mut c = vec![0.0f32; m * n];
                pool.install(|| CpuBackend::new(Precision::F32).matmul(m, n, k, &mut c, n, false, av, MatRef::row_major(&b, n)));
                c
            };
            let one = run(1);
            assert_eq!(one, run(3));
            assert_eq!(one, run(8));
        }
    }

    /// Our kernel agrees with the `gemm` crate it replaces.
    #[test]
    fn agrees_with_the_gemm_crate() {
        let (m, n, k) = (96, 160, 256);
        let a = data(m * k, 9);
        let bt = data(n * k, 10);
        let (av, bv) = (MatRef::row_major(&a, k), MatRef::transposed(&bt, k));
        let mut ours = vec![0.0f32; m * n];
        let mut theirs = vec![0.0f32; m * n];
        CpuBackend::new(Precision::F32).matmul(m, n, k, &mut ours, n, false, av, bv);
        CpuBackend::f32_on_gemm_crate().matmul(m, n, k, &mut theirs, n, false, av, bv);
        let want: Vec<f64> = theirs.iter().map(|&x| x as f64).collect();
        close(&ours, &want, k, "vs gemm crate");
    }
}
