//! bf16 GEMM with f32 accumulation on AVX512-BF16.
//!
//! `vdpbf16ps` multiplies pairs of bf16 values and adds both products into one
//! f32 lane, so both operands are packed as *pairs along k*: one u32 holds
//! `(x[k], x[k+1])` as two bf16 halves (low half = even k).
//!
//! - A (`[m, k]`) is packed into panels of `MR` rows: `pa[(panel·k2 + kk)·MR + r]`.
//! - B (`[k, n]`) is packed into panels of `NR` columns: `pb[(panel·k2 + kk)·NR + c]`.
//!
//! The micro-kernel keeps an `MR × NR` tile of f32 accumulators in 16
//! zmm registers, broadcasts one A pair per row and multiplies it against two
//! zmm of B pairs. Tails in m, n and odd k are zero-padded at packing time, so
//! the kernel always runs full tiles and only the write-back is clipped.
//! Operands are repacked per matmul: packing is O(k·(m+n)) against the
//! O(m·n·k) product, and weights change every optimizer step anyway.

#[cfg(target_arch = "x86_64")]
use super::super::MatRef;
#[cfg(target_arch = "x86_64")]
use super::SendPtr;
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;

/// Rows per micro-tile.
pub const MR: usize = 8;
/// Columns per micro-tile (two zmm registers of f32).
pub const NR: usize = 32;
/// Micro-tiles per parallel task, along m and n.
const TASK_MR: usize = 8;
const TASK_NR: usize = 4;

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

/// Packs `view` (`[rows, k]`) into panels of `w` rows of k-pairs (see the
/// module doc), zero-padding past `rows` and `k`. Two fast paths cover every
/// layout the model uses: rows contiguous (`cs == 1`) and columns
/// contiguous (`rs == 1`); both convert without per-element bounds checks.
#[cfg(target_arch = "x86_64")]
fn pack(rows: usize, k: usize, w: usize, view: MatRef<'_>, out: &mut [u32]) {
    let k2 = k.div_ceil(2);
    let full_k = k / 2;
    out.par_chunks_mut(k2 * w).enumerate().for_each(|(panel, dst)| {
        let r0 = panel * w;
        let live = w.min(rows - r0);
        if live < w {
            dst.fill(0);
        }
        if view.cs == 1 {
            // Each row is contiguous: convert its pairs, scatter with stride w.
            for r in 0..live {
                let src = &view.data[(r0 + r) * view.rs..(r0 + r) * view.rs + k];
                for (kk, pr) in src.chunks_exact(2).enumerate() {
                    dst[kk * w + r] = pair(pr[0], pr[1]);
                }
                if k % 2 == 1 {
                    dst[full_k * w + r] = pair(src[k - 1], 0.0);
                }
            }
        } else if view.rs == 1 {
            // Each column is contiguous across the panel's rows: for a pair
            // of columns, both sources and the destination are contiguous.
            for kk in 0..k2 {
                let lo = &view.data[r0 + 2 * kk * view.cs..r0 + 2 * kk * view.cs + live];
                let d = &mut dst[kk * w..kk * w + live];
                if 2 * kk + 1 < k {
                    let hi = &view.data[r0 + (2 * kk + 1) * view.cs..r0 + (2 * kk + 1) * view.cs + live];
                    for ((d, &l), &h) in d.iter_mut().zip(lo).zip(hi) {
                        *d = pair(l, h);
                    }
                } else {
                    for (d, &l) in d.iter_mut().zip(lo) {
                        *d = pair(l, 0.0);
                    }
                }
            }
        } else {
            let get = |r: usize, p: usize| if p < k { view.data[(r0 + r) * view.rs + p * view.cs] } else { 0.0 };
            for kk in 0..k2 {
                for r in 0..live {
                    dst[kk * w + r] = pair(get(r, 2 * kk), get(r, 2 * kk + 1));
                }
            }
        }
    });
}

/// `c[m, n] (ldc) = (accumulate ? c : 0) + a · b` in bf16 with f32
/// accumulation. The caller (`CpuBackend`) has checked shapes and that the
/// CPU supports AVX512-BF16. `pa`/`pb` are reusable packing buffers.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    pa: &mut Vec<u32>,
    pb: &mut Vec<u32>,
) {
    let k2 = k.div_ceil(2);
    let (mp, np) = (m.div_ceil(MR), n.div_ceil(NR));
    if pa.len() < mp * MR * k2 {
        pa.resize(mp * MR * k2, 0);
    }
    if pb.len() < np * NR * k2 {
        pb.resize(np * NR * k2, 0);
    }
    let (pa, pb) = (&mut pa[..mp * MR * k2], &mut pb[..np * NR * k2]);
    pack(m, k, MR, a, pa);
    // B is packed as panels of its columns: view it as bᵀ ([n, k]).
    pack(
        n,
        k,
        NR,
        MatRef {
            data: b.data,
            rs: b.cs,
            cs: b.rs,
        },
        pb,
    );
    let (pa, pb) = (&*pa, &*pb);
    let (tm, tn) = (mp.div_ceil(TASK_MR), np.div_ceil(TASK_NR));
    let cptr = SendPtr(c.as_mut_ptr());
    (0..tm * tn).into_par_iter().for_each(|task| {
        let (ti, tj) = (task / tn, task % tn);
        for p in ti * TASK_MR..((ti + 1) * TASK_MR).min(mp) {
            for q in tj * TASK_NR..((tj + 1) * TASK_NR).min(np) {
                let (i0, j0) = (p * MR, q * NR);
                let (mr, nr) = (MR.min(m - i0), NR.min(n - j0));
                // SAFETY: tile (p, q) belongs to exactly one task; rows
                // i0..i0+mr and columns j0..j0+nr are inside c (shapes checked
                // by the caller); the packed panels hold k2 pairs each.
                unsafe {
                    kernel(
                        k2,
                        pa[p * MR * k2..].as_ptr(),
                        pb[q * NR * k2..].as_ptr(),
                        cptr.get().add(i0 * ldc + j0),
                        ldc,
                        mr,
                        nr,
                        accumulate,
                    );
                }
            }
        }
    });
}

/// One `MR × NR` tile: `c[0..mr, 0..nr] (+)= Σ_kk a_pairs[kk] ⊗ b_pairs[kk]`.
///
/// # Safety
/// AVX512-BF16 must be available; `a` must hold `k2·MR` and `b` `k2·NR` u32;
/// `c` must address an `mr × nr` block with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(k2: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
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
    if nr == NR {
        for (r, acc_r) in acc.iter().enumerate().take(mr) {
            // SAFETY: row r < mr, 32 columns, inside c per the contract.
            unsafe {
                let row = c.add(r * ldc);
                let (mut v0, mut v1) = (acc_r[0], acc_r[1]);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
                }
                _mm512_storeu_ps(row, v0);
                _mm512_storeu_ps(row.add(16), v1);
            }
        }
    } else {
        let mut tile = [[0.0f32; NR]; MR];
        for (t, acc_r) in tile.iter_mut().zip(&acc) {
            // SAFETY: t has exactly 32 f32.
            unsafe {
                _mm512_storeu_ps(t.as_mut_ptr(), acc_r[0]);
                _mm512_storeu_ps(t.as_mut_ptr().add(16), acc_r[1]);
            }
        }
        for (r, t) in tile.iter().enumerate().take(mr) {
            for (j, v) in t.iter().enumerate().take(nr) {
                // SAFETY: r < mr, j < nr, inside c per the contract.
                unsafe {
                    let dst = c.add(r * ldc + j);
                    *dst = if accumulate { *dst + v } else { *v };
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::backend::{Backend, CpuBackend, Precision, cpu::has_avx512bf16};

    use crate::backend::cpu::test_data as data;

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
        let mut be = CpuBackend::bf16_without_amx();
        assert_eq!(be.precision(), Precision::Bf16);
        for &(m, n, k) in &[(1, 1, 1), (7, 33, 5), (9, 31, 64), (17, 65, 33), (70, 100, 129)] {
            let a = data(m * k, m as u64);
            let b = data(k * n, n as u64);
            let want = reference(m, n, k, &a, &b);
            // The same logical a and b stored three ways, to reach every
            // packing path: row-major, transposed, and padded rows (generic).
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            // Every other element: neither rows nor columns contiguous.
            let ap: Vec<f32> = (0..2 * m * k).map(|i| if i % 2 == 0 { a[i / 2] } else { f32::NAN }).collect();
            let layouts = [
                (MatRef::row_major(&a, k), MatRef::row_major(&b, n)),
                (MatRef::transposed(&at, m), MatRef::transposed(&bt, k)),
                (
                    MatRef {
                        data: &ap,
                        rs: 2 * k,
                        cs: 2,
                    },
                    MatRef { data: &b, rs: n, cs: 1 },
                ),
                (MatRef { data: &at, rs: 1, cs: m }, MatRef { data: &b, rs: n, cs: 1 }),
            ];
            for (li, (av, bv)) in layouts.into_iter().enumerate() {
                let mut c = vec![0.5f32; m * n];
                be.matmul(m, n, k, &mut c, n, true, av, bv);
                for (i, (got, want)) in c.iter().zip(&want).enumerate() {
                    // Same rounded operands; only the f32 summation order differs.
                    let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                    assert!(
                        (got - 0.5 - want).abs() <= tol,
                        "({m},{n},{k}) layout {li} elem {i}: {got} - 0.5 vs {want}"
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
