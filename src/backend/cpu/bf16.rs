//! bf16 GEMM with f32 accumulation on AVX512-BF16, through the packed-panel
//! driver in `tiled.rs`.
//!
//! `vdpbf16ps` multiplies pairs of bf16 values and adds both products into one
//! f32 lane, so both operands are packed as *pairs along k*: one u32 holds
//! `(x[k], x[k+1])` as two bf16 halves (low half = even k).

#[cfg(target_arch = "x86_64")]
use super::tiled::{self, Acc, MR, NR, Panels, Strided};

/// f32 → bf16 bits, rounding to nearest even (what `vcvtne2ps2bf16` does);
/// NaN stays a quiet NaN.
#[inline(always)]
pub fn to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline(always)]
pub fn from_bf16_bits(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The pair `(lo, hi)` as one u32 of two bf16 halves.
#[inline(always)]
pub(super) fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16_bits(lo) as u32 | ((to_bf16_bits(hi) as u32) << 16)
}

/// Scalar reference: `a · b` with both operands rounded to bf16 and f32
/// accumulation in the kernel's order (pairs along k summed into one f32).
/// Used by the tests to check the kernel on odd sizes.
pub fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    let r = |x: f32| from_bf16_bits(to_bf16_bits(x));
    let mut out = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += r(a[i * k + p]) * r(b[p * n + j]);
            }
            out[i * n + j] = acc;
        }
    }
    out
}

/// `out[i] = pair(src[2i], src[2i + 1])` for a contiguous run (an odd last
/// value pairs with zero), 16 pairs per `vcvtne2ps2bf16`. `out` holds
/// `src.len().div_ceil(2)` words.
///
/// # Safety
/// AVX512F and AVX512-BF16 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn pairs_of_row(src: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    assert_eq!(out.len(), src.len().div_ceil(2));
    let mut srcs = src.chunks_exact(32);
    let mut outs = out.chunks_exact_mut(16);
    for (s, o) in srcs.by_ref().zip(outs.by_ref()) {
        // SAFETY: s holds 32 f32 and o 16 u32; the result's low half
        // converts s[0..16] and its high half s[16..32], which in memory is
        // the bf16 run in order, i.e. its 16 pairs.
        unsafe {
            let v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s.as_ptr().add(16)), _mm512_loadu_ps(s.as_ptr()));
            _mm512_storeu_si512(o.as_mut_ptr() as *mut __m512i, std::mem::transmute::<__m512bh, __m512i>(v));
        }
    }
    let rest = srcs.remainder();
    for (i, o) in outs.into_remainder().iter_mut().enumerate() {
        *o = pair(rest[2 * i], rest.get(2 * i + 1).copied().unwrap_or(0.0));
    }
}

/// `out[i] = pair(lo[i], hi[i])` for two runs of equal length, 16 pairs per
/// step: each half converted, widened to 32 bits, the odd one shifted up.
///
/// # Safety
/// AVX512F and AVX512-BF16 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn pairs_of_columns(lo: &[f32], hi: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    assert!(lo.len() == out.len() && hi.len() == out.len());
    let n16 = out.len() / 16 * 16;
    for i in (0..n16).step_by(16) {
        // SAFETY: lo, hi and out hold 16 elements from i (i + 16 ≤ len).
        unsafe {
            let l: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(lo.as_ptr().add(i))));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(hi.as_ptr().add(i))));
            let v = _mm512_or_si512(_mm512_cvtepu16_epi32(l), _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut __m512i, v);
        }
    }
    for i in n16..out.len() {
        out[i] = pair(lo[i], hi[i]);
    }
}

/// The AVX512-BF16 micro-kernel: words are bf16 pairs along k.
#[cfg(target_arch = "x86_64")]
pub(super) struct Bf16;

#[cfg(target_arch = "x86_64")]
impl Panels for Bf16 {
    const GROUP: usize = 2;
    const DIRECT_A: bool = false;

    #[inline(always)]
    fn word(group: &[f32]) -> u32 {
        pair(group[0], group[1])
    }

    unsafe fn words_of_row(src: &[f32], out: &mut [u32]) {
        // SAFETY: the trait's contract (the CPU runs this kernel).
        unsafe { pairs_of_row(src, out) }
    }

    unsafe fn words_of_columns(lo: &[f32], hi: &[f32], out: &mut [u32]) {
        // SAFETY: as above.
        unsafe { pairs_of_columns(lo, hi, out) }
    }

    unsafe fn tile(steps: usize, a: Strided, b: *const u32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32) {
        // A is always packed here (DIRECT_A is false).
        debug_assert!(a.rs == 1 && a.cs == MR);
        // SAFETY: the trait's contract.
        unsafe { kernel(steps, a.ptr, b, c, ldc, mr, nr, accumulate, alpha) }
    }
}

/// One `MR × NR` tile: `c[0..mr, 0..nr] (+)= Σ_kk a_pairs[kk] ⊗ b_pairs[kk]`.
///
/// # Safety
/// AVX512-BF16 must be available; `a` must hold `k2·MR` and `b` `k2·NR` u32;
/// `c` must address an `mr × nr` block with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(k2: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool, alpha: f32) {
    use std::arch::x86_64::*;
    let mut acc: Acc = [[_mm512_setzero_ps(); 2]; MR];
    for kk in 0..k2 {
        // SAFETY: in bounds per the contract above; bf16 vectors are plain
        // bit patterns, so the transmutes from integer vectors are exact.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(kk * NR) as *const __m512i));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(kk * NR + 16) as *const __m512i));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(kk * MR + r) as i32));
                acc_r[0] = _mm512_dpbf16_ps(acc_r[0], av, b0);
                acc_r[1] = _mm512_dpbf16_ps(acc_r[1], av, b1);
            }
        }
    }
    // SAFETY: the contract above covers store's.
    unsafe { tiled::store(&acc, c, ldc, mr, nr, accumulate, alpha) }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::backend::{Backend, CpuBackend, MatRef, Precision, cpu::has_avx512bf16};

    use crate::backend::cpu::{Stored, test_data as data};

    #[test]
    fn rounding_is_nearest_even() {
        // 1 + 2^-8 is exactly half-way between two bf16 values: ties to even (1.0).
        assert_eq!(to_bf16_bits(1.0 + 1.0 / 256.0), to_bf16_bits(1.0));
        // 1 + 3·2^-8 is half-way too: ties to the even neighbour 1 + 2^-6.
        assert_eq!(from_bf16_bits(to_bf16_bits(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16_bits(to_bf16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn kernel_matches_scalar_reference_on_odd_sizes() {
        if !has_avx512bf16() {
            println!("skipping: CPU lacks AVX512-BF16");
            return;
        }
        // Both kernels off AMX: `vdpbf16ps`, and FMA over rounded operands.
        for (what, mut be) in [("vdpbf16ps", CpuBackend::bf16_without_amx()), ("fma", CpuBackend::bf16_on_fma())] {
            assert_eq!(be.precision(), Precision::Bf16);
            check_against_reference(what, &mut be);
        }
    }

    fn check_against_reference(what: &str, be: &mut CpuBackend) {
        // k 601 spans three k-blocks of pairs (KC 256 steps), with an odd
        // last pair.
        for &(m, n, k) in &[(1, 1, 1), (7, 33, 5), (9, 31, 64), (17, 65, 33), (70, 100, 129), (20, 40, 601)] {
            let (a, b) = (data(m * k, m as u64), data(k * n, n as u64));
            let want = reference(m, n, k, &a, &b);
            // Every layout, to reach every packing path.
            let stored = Stored::new(m, n, k, a, b);
            for (li, (av, bv)) in stored.layouts().into_iter().enumerate() {
                let mut c = vec![0.5f32; m * n];
                be.matmul(m, n, k, &mut c, n, true, av, bv);
                for (i, (got, want)) in c.iter().zip(&want).enumerate() {
                    // Same rounded operands; only the f32 summation order differs.
                    let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                    assert!(
                        (got - 0.5 - want).abs() <= tol,
                        "{what} ({m},{n},{k}) layout {li} elem {i}: {got} - 0.5 vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn bf16_result_is_close_to_f32() {
        if !has_avx512bf16() {
            println!("skipping: CPU lacks AVX512-BF16");
            return;
        }
        let (m, n, k) = (33, 47, 256);
        let a = data(m * k, 11);
        let bt = data(n * k, 12);
        let (av, bv) = (MatRef::row_major(&a, k), MatRef::transposed(&bt, k));
        let mut c16 = vec![0.0f32; m * n];
        let mut c32 = vec![0.0f32; m * n];
        CpuBackend::new(Precision::Bf16).matmul(m, n, k, &mut c16, n, false, av, bv);
        CpuBackend::new(Precision::F32).matmul(m, n, k, &mut c32, n, false, av, bv);
        // bf16 keeps 8 significant bits (relative rounding 2^-9 per operand);
        // errors of k random-sign products grow like √k: bound the relative
        // Frobenius error at 1%.
        let err: f32 = c16.iter().zip(&c32).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt();
        let norm: f32 = c32.iter().map(|y| y * y).sum::<f32>().sqrt();
        assert!(err / norm < 1e-2, "relative error {}", err / norm);
        assert!(err > 0.0, "bf16 path produced exactly the f32 result; was the kernel used?");
    }
}
